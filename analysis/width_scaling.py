#!/usr/bin/python3
"""Width scaling: runs that differ only in model.width (as jobs/width-sweep.sbatch
makes them), each compared with the widest.

    analysis/width_scaling.py RUN_DIR... [--out width_scaling.png] [--tsv FILE]

Prints, and plots on log-log axes against M, the sup over time of the loss
difference and the Wasserstein-2 distance of the final measure from the
widest run, with the fitted exponents and their standard errors
(see analysis/scaling.py)."""
from scaling import main

if __name__ == "__main__":
    main("model.width", __doc__.split("\n")[0], "width_scaling.png")
