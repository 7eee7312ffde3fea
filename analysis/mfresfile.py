"""Reading mfres output: run directories, outputs.h5, checkpoints and snapshots.

Every analysis script goes through this module, so HDF5 paths and the
layout check live in one place. A file is accepted only if it is a complete
mfres file in the H5MD 1.1 layout that mfres writes.

    run = load_run("runs/width/L0004-M00000064/s000")   # a run of a study
    run.metrics["loss"], run.value("model.width"), run.measures()[-1].u
    run.outputs()["output"]        # [T][probes][d_out], from outputs.h5
    runs = load_runs(["runs/width"])                   # every run below a folder

As a command, `mfresfile.py PATH...` prints one line per run directory
(steps done, final loss) or per checkpoint or snapshot (kind, step, L, M,
D), checking each file's layout and checksums.
"""
import argparse
import configparser
import glob
import os

import h5py
import numpy as np

H5MD_VERSION = [1, 1]


class Measure:
    """The particles of one checkpoint or snapshot.

    u, w: [N][D]; b: [N], in the run's precision (float64, or float32 for
    model.precision = mixed; theta() returns float64 either way);
    layer, id: [N] (the global id l*M + m); step, time; width M, layers L,
    dim D, stride, precision ("double" or "mixed"); config:
    {"model.width": ...}; observables: {name: (step[T], time[T], value[T])}."""

    def __init__(self, path):
        self.path = path
        with h5py.File(path, "r") as f:
            check_layout(f, path)
            c = f["checkpoint"].attrs
            self.kind = text(c["kind"])
            self.step, self.time = int(c["step"]), float(c["time"])
            self.stride = int(c["stride"])
            self.config = {k: text(v) if isinstance(v, (bytes, str)) else v.item()
                           for k, v in f["parameters"].attrs.items()}
            blocks = f["particles/blocks"]
            self.u = verified(blocks["u/value"])[0]
            self.w = verified(blocks["w/value"])[0]
            self.b = verified(blocks["b/value"])[0]
            self.layer = verified(blocks["layer"])
            self.id = verified(blocks["id"])
            self.observables = {name: tuple(g[k][()] for k in ("step", "time", "value"))
                                for name, g in f["observables"].items()}
        self.layers = int(self.config["model.layers"])
        self.width = int(self.config["model.width"])
        self.dim = int(self.config["model.dim"])
        self.precision = self.config.get("model.precision", "double")  # older files: double
        bits = 32 if self.precision == "mixed" else 64
        if self.u.dtype != np.dtype(f"float{bits}"):
            raise ValueError(f"{path}: particles of type {self.u.dtype}, expected float{bits} "
                             f"(model.precision = {self.precision})")

    def theta(self, layer=None):
        """Particles as points (u, w, b) in R^(2D+1), of one layer or all,
        as float64."""
        points = np.hstack([self.u, self.w, self.b[:, None]]).astype(np.float64, copy=False)
        return points if layer is None else points[self.layer == layer]


def text(value):
    """A string attribute as str: mfres writes fixed-length bytes, h5py
    writes a str as a variable-length string."""
    return value.decode() if isinstance(value, bytes) else value


def check_layout(f, path):
    if "h5md" not in f or text(f["h5md/creator"].attrs.get("name")) != "mfres":
        raise ValueError(f"{path}: not an mfres file")
    version = list(f["h5md"].attrs["version"])
    if version != H5MD_VERSION:
        raise ValueError(f"{path}: H5MD version {version}, expected {H5MD_VERSION}")
    if f["checkpoint"].attrs.get("complete") != 1:
        raise ValueError(f"{path}: incomplete file")


CHECKSUM_K, CHECKSUM_C = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9)


def checksum(values):
    """mfres's checksum of a dataset's values, as an int: the sum modulo 2^64
    over elements i of mix(e_i XOR (i+1) K), mix(x) = y XOR (y >> 32) with
    y = x C (include/h5.h defines it; this is an independent implementation).
    Strings count as one element per byte."""
    a = np.ascontiguousarray(values)
    if a.dtype.kind == "S" or a.dtype.itemsize not in (1, 2, 4, 8):
        e = np.frombuffer(a.tobytes(), np.uint8).astype(np.uint64)
    else:
        e = a.reshape(-1).view(f"u{a.dtype.itemsize}").astype(np.uint64)
    y = (e ^ (np.arange(1, e.size + 1, dtype=np.uint64) * CHECKSUM_K)) * CHECKSUM_C
    return int(np.sum(y ^ (y >> np.uint64(32)), dtype=np.uint64))


def verified(dataset):
    """The values of an h5py dataset of an mfres file, after checking them
    against its checksum attribute (ValueError when they differ)."""
    values = dataset[()]
    if "checksum" in dataset.attrs and checksum(values) != int(dataset.attrs["checksum"]):
        raise ValueError(f"{dataset.file.filename}: dataset '{dataset.name}' does not match "
                         "its checksum (damaged)")
    return values


def read_outputs(path):
    """outputs.h5 of a run: {"step", "time", "loss", "test_loss",
    "test_accuracy": [T], "output": [T][P][d_out], "probes_x": [P][d_in],
    "config": resolved INI text}. ValueError for anything else."""
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("creator") != b"mfres":
                raise ValueError(f"{path}: not an mfres outputs file")
            out = {k: f[k][()] for k in ("step", "time", "loss", "test_loss", "test_accuracy")}
            n = len(out["step"])
            out["output"] = f["output"][()] if "output" in f else np.zeros((n, 0, 0))
            out["probes_x"] = f["probes/x"][()]
            out["config"] = text(f.attrs["config"])
    except (OSError, KeyError) as e:
        raise ValueError(f"{path}: cannot read ({e})") from None
    if any(len(v) != n for k, v in out.items() if k not in ("probes_x", "config")):
        raise ValueError(f"{path}: series of different lengths (written while read?)")
    return out


class Run:
    """A run directory: config.ini, metrics.tsv, outputs.h5, snapshots/ and
    checkpoints/."""

    def __init__(self, path):
        self.path = path
        if not os.path.exists(os.path.join(path, "metrics.tsv")):
            raise ValueError(f"{path}: not an mfres run directory (no metrics.tsv)")
        self.config = configparser.ConfigParser(inline_comment_prefixes=(";",))
        self.config.read(os.path.join(path, "config.ini"))
        self._outputs = None
        with open(os.path.join(path, "metrics.tsv")) as f:
            header = f.readline().rstrip("\n").split("\t")
            rows = np.array([[float(v) for v in line.split("\t")] for line in f], ndmin=2)
        self.metrics = {name: rows[:, i] for i, name in enumerate(header)}

    @property
    def name(self):
        return os.path.basename(os.path.normpath(self.path))

    def value(self, key):
        """A configuration value, "section.key", as int, float or text."""
        section, name = key.split(".")
        text = self.config[section][name]
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text

    def outputs(self):
        """The run's outputs.h5 (see read_outputs), read once."""
        if self._outputs is None:
            self._outputs = read_outputs(os.path.join(self.path, "outputs.h5"))
        return self._outputs

    def steps_done(self):
        """The last logged step (0 when none)."""
        return int(self.metrics["step"][-1]) if len(self.metrics.get("step", [])) else 0

    @property
    def finished(self):
        return self.steps_done() == self.value("train.steps")

    def files(self, kind="snapshots"):
        prefix = "snap" if kind == "snapshots" else "ckpt"
        return sorted(glob.glob(os.path.join(self.path, kind, f"{prefix}-*.h5")))

    def measures(self):
        """The measure over time: snapshots, or checkpoints when there are none."""
        files = self.files("snapshots") or self.files("checkpoints")
        return [Measure(p) for p in files]

    def final_measure(self):
        """The newest complete checkpoint (every particle)."""
        files = self.files("checkpoints")
        if not files:
            raise ValueError(f"{self.path}: no checkpoint")
        return Measure(files[-1])


def load_run(path):
    return Run(path)


def find_run_dirs(paths):
    """Run directories (those holding a config.ini) among paths and below
    them, at any depth, sorted."""
    found = []
    for p in paths:
        if not os.path.isdir(p):
            raise ValueError(f"{p}: no such directory")
        for root, dirs, files in os.walk(p):
            if "config.ini" in files:
                found.append(root)
                dirs.clear()  # nothing of interest inside a run
            dirs.sort()
    return sorted(set(found))


def load_runs(paths):
    """Run directories from a list of paths (directories, or folders holding
    them at any depth)."""
    runs = [Run(p) for p in find_run_dirs(paths)
            if os.path.exists(os.path.join(p, "metrics.tsv"))]
    if not runs:
        raise ValueError(f"no run directories in {paths}")
    return runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", help="run directories, checkpoints or snapshots")
    for path in parser.parse_args().paths:
        if os.path.isdir(path):
            for run in load_runs([path]):
                print(f"{run.path}: run, {run.steps_done()} of {run.value('train.steps')} steps, "
                      f"loss {run.metrics['loss'][-1]:.6g}")
        else:
            m = Measure(path)
            print(f"{path}: {m.kind} at step {m.step} (time {m.time:g}), L = {m.layers}, "
                  f"M = {m.width}, D = {m.dim}, stride {m.stride}, {m.precision} precision")


if __name__ == "__main__":
    main()
