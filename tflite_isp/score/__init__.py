"""Scoring: the leaderboard (PSNR, SSIM, MAI score), the LibRaw baseline, runtime sources, the HTML report, the zoo."""
