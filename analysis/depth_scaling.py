#!/usr/bin/python3
"""Depth scaling: runs that differ only in model.layers (as jobs/depth-sweep.sbatch
makes them), each compared with the deepest.

    analysis/depth_scaling.py RUN_DIR... [--out depth_scaling.png] [--tsv FILE]

Layers are matched by relative depth (l + 1/2) / L, the depth-time of the
mean-field ODE; otherwise as analysis/width_scaling.py."""
from scaling import main

if __name__ == "__main__":
    main("model.layers", __doc__.split("\n")[0], "depth_scaling.png")
