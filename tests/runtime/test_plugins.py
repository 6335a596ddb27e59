"""A studio's own node package, installed with pip, runs in a graph like a built-in node."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from swapgraph.runtime.errors import RegistryError
from swapgraph.runtime.registry import Registry
from swapgraph.nodes.builtin import NODES as BUILTIN_NODES
from swapgraph.nodes.video.decode import Decode

from helpers import decode_all, swapgraph_subprocess, write_graph

PLUGIN = '''
from __future__ import annotations

from swapgraph.runtime.node import Node, NodeSchema, Params, Port
from swapgraph.runtime.ports import Frames
from pydantic import Field


class InvertParams(Params):
    amount: float = Field(1.0, ge=0, le=1, description="how much to invert")


class Invert(Node):
    """Invert the colours of frames (a studio's own node)."""

    schema = NodeSchema(inputs={"frames": Port(Frames)}, outputs={"frames": Port(Frames)},
                        params=InvertParams, category="studio")

    def process(self, frames):
        a = self.params.amount
        return {"frames": frames.with_data(frames.data * (1 - a) + (1 - frames.data) * a)}


NODES = [Invert]
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("plugin")
    pkg = root / "studio-nodes"
    pkg.mkdir()
    (pkg / "studio_nodes.py").write_text(PLUGIN)
    (pkg / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "studio-nodes"
        version = "1.0"

        [project.entry-points."swapgraph.nodes"]
        studio = "studio_nodes:NODES"

        [tool.setuptools]
        py-modules = ["studio_nodes"]
    '''))
    site = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(site), str(pkg)], check=True, capture_output=True)
    return site


def test_installed_plugin_node_runs_in_a_graph(plugin_site, clip, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_site), os.environ.get("PYTHONPATH", "")])}
    listing = swapgraph_subprocess("nodes", env=env).communicate(timeout=120)[0]
    assert "Invert" in listing and "studio" in listing
    described = swapgraph_subprocess("nodes", "Invert", env=env).communicate(timeout=120)[0]
    assert "plugin 'studio'" in described and "amount" in described
    out = tmp_path / "inv.mkv"
    graph = write_graph(tmp_path / "g.json", {
        "plate": {"type": "Decode", "params": {"path": str(clip)}},
        "inv": {"type": "Invert", "inputs": {"frames": "plate.frames"}},
        "out": {"type": "Encode", "inputs": {"frames": "inv.frames"}, "params": {"path": "inv.mkv", "codec": "ffv1"}}})
    proc = swapgraph_subprocess("run", graph, "--quiet", env=env)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    src, _ = decode_all(clip)
    got, _ = decode_all(out)
    assert np.array_equal(got, 255 - src)
    # without the plugin on the path the type is unknown, and validate says so
    proc = swapgraph_subprocess("validate", graph)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "unknown node type 'Invert'" in err


def test_name_clash_is_refused():
    class Decode2(Decode):
        pass

    Decode2.__name__ = "Decode"
    registry = Registry(BUILTIN_NODES)
    with pytest.raises(RegistryError, match="clashes"):
        registry.register(Decode2, "plugin 'x'")
