"""Building blocks of the models: `basic` (convolutions, GDN, rate gains), `flow` (Haar squeeze,
ActNorm, invertible 1×1 convolutions, couplings), `stereo` (disparity matching, fusion) and
`vq` (residual vector quantization with EMA codebooks).

Imports only torch."""
