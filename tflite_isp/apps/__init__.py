"""Applications on top of the chain: enhance (camera RAW to JPEG under a memory budget), the ratio predictor."""
