"""Training: the loop and its CLI, objectives (plain, distillation, joint heads), losses, pruning, fine-tuning."""
