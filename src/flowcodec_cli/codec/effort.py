"""The encoder's effort levels (`encode --effort N`, `bench --effort N`): how many refinement
steps each level takes per tile (`refine.py` takes them). No torch here, so the command line
lists and checks the levels without loading it."""

STEPS = (0, 4, 8, 16)
"""Gradient steps per tile at each effort level (the index); 0 codes the analysis as it is. A
step costs about four syntheses of the tile: the relaxation forward and backward, and the real
decode that scores it (`refine.py`). No level goes further: the annealed descent has converged
by 16 steps (measured: 48 steps, or three annealing cycles of 16, end where 16 do)."""

MAX_EFFORT = len(STEPS) - 1
