"""RAW Bayer data: packing conventions, reading camera files (rawpy), writing DNG, unprocessing sRGB into RAW."""
