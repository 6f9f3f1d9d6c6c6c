"""A RAW file's CFA and black-level tags, read with tifffile: LibRaw folds a CFA larger than 2 x 2 into a wrong
2 x 2 pattern (measured with rawpy 0.28: a Quad Bayer DNG reads back as ``[[0, 0], [1, 1]]``), so the Quad Bayer
layout and its per-site black levels come from the tags themselves."""
from __future__ import annotations

from pathlib import Path

import numpy as np

_LETTER = {0: "R", 1: "G", 2: "B", 3: "C", 4: "M", 5: "Y", 6: "W"}
_CFA_DIM, _CFA, _BLACK_DIM, _BLACK = 33421, 33422, 50713, 50714


def _cfa_page_tags(path: Path) -> dict:
    """Tag code -> value of the IFD holding the CFA (DNGs may keep it in a SubIFD); {} for a non-TIFF file."""
    import tifffile  # lazy: only TIFF-based RAW files need it

    try:
        with tifffile.TiffFile(path) as tif:
            for page in tif.pages:
                codes = {t.code: t.value for t in page.tags.values()}
                if _CFA in codes:
                    return codes
    except (tifffile.TiffFileError, OSError, ValueError, IndexError, KeyError):
        pass
    return {}


def cfa_tags(path) -> tuple:
    """(CFA rows of colour letters or None, black levels as rows of BlackLevelRepeatDim or None) of a RAW file."""
    return parse(_cfa_page_tags(Path(path)))


def parse(tags: dict) -> tuple:
    """:func:`cfa_tags` of an IFD's tags already read (code -> value)."""
    dims, pattern = tags.get(_CFA_DIM), tags.get(_CFA)
    if dims is None or pattern is None:
        return None, None
    rows, cols = (int(d) for d in np.ravel(dims))
    codes = bytes(pattern) if not isinstance(pattern, bytes) else pattern
    if len(codes) != rows * cols:
        return None, None
    cfa = tuple("".join(_LETTER.get(c, "?") for c in codes[r * cols:(r + 1) * cols]) for r in range(rows))
    black = tags.get(_BLACK)
    if black is not None:
        bdims = tuple(int(d) for d in np.ravel(tags.get(_BLACK_DIM, (1, 1))))
        values = np.asarray(np.ravel(black), np.float64)
        if values.size == 2 * np.prod(bdims):  # RATIONAL: numerator, denominator pairs
            values = values[0::2] / values[1::2]
        black = tuple(tuple(float(v) for v in row) for row in values.reshape(bdims)) \
            if values.size == np.prod(bdims) else None
    return cfa, black
