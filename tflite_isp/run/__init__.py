"""Running exported files here: the LiteRT runner, tiling, local timing, MODEL arguments and runtime records."""
