"""The shape of the source tree: no module includes one that includes it
back, no .c file above 600 lines, main.c a dispatcher."""
import glob
import os
import re

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def module(path):
    """checkpoint_write.c belongs to checkpoint; cmd_*.c and main.c to main."""
    name = os.path.splitext(os.path.basename(path))[0]
    if name.startswith("cmd_") or name == "commands":
        return "main"
    return name.replace("_write", "")


def includes():
    graph = {}
    for path in glob.glob(os.path.join(ROOT, "src", "*.c")) + \
            glob.glob(os.path.join(ROOT, "include", "*.h")):
        deps = {module(h) for h in re.findall(r'#include "(\w+)\.h"', open(path).read())}
        graph.setdefault(module(path), set()).update(deps - {module(path)})
    return graph


def test_no_import_cycles():
    graph = includes()
    assert {"log", "timer", "comm", "checkpoint", "train", "history", "rundir"} <= set(graph)
    state = {}

    def visit(node, path):
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            assert state.get(dep) != "open", " -> ".join(path + [dep])
            if dep not in state:
                visit(dep, path + [dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not graph["log"] and graph["timer"] <= set()  # below everything
    assert "train" not in graph["checkpoint"]


def test_file_sizes():
    for path in glob.glob(os.path.join(ROOT, "src", "*.c")):
        lines = sum(1 for _ in open(path))
        assert lines <= (150 if path.endswith("main.c") else 600), (path, lines)
