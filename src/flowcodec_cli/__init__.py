"""flowcodec: a learned image codec that writes real bitstreams (.fcx).

    codec/       the coding core: container, entropy coding, the encode/decode pipeline, tiles
    models/      the networks: flow, hyperprior, side information, the shared entropy model
    training/    the training loop, data, checkpoints, ablations, model cards, operating points
    evaluation/  `flowcodec bench`, metrics, classical codecs, anchors, analyses
    files/       images in and out, input → output jobs, the one atomic writer
    zoo.py       the registered, sha256-pinned weights; cli.py the command line; errors.py exit codes

The coding core never imports training or evaluation (tests/test_layout.py).
"""
