"""Building blocks of the models: `basic` (convolutions, GDN, rate gains), `flow` (Haar squeeze,
ActNorm, invertible 1×1 convolutions, couplings) and `stereo` (disparity matching, fusion).

Imports only torch."""
