"""Programs run on a board with its own Python (any 3.x, standard library only): sent as source over ssh."""
