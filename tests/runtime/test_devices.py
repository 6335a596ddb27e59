"""How many cores a run can get: the allowed cores less those other processes keep busy."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from swapgraph.runtime.devices import CoreMeter, allowed_cores, usable_cores


@pytest.mark.skipif(allowed_cores() < 2, reason="needs two cores to leave one free")
def test_a_core_another_process_keeps_busy_is_not_counted():
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        meter = CoreMeter()
        time.sleep(0.5)
        others = meter.others_busy()
        assert others is not None and others >= 0.7  # the spinner's core (and whatever else runs here)
        assert usable_cores() <= allowed_cores() - 1
    finally:
        spinner.kill()
        spinner.wait()


def test_this_process_own_work_is_not_counted_as_others():
    meter = CoreMeter()
    end = time.process_time() + 0.4
    while time.process_time() < end:  # this process keeps a core busy itself
        pass
    others = meter.others_busy()
    assert others is not None and others < 0.7  # counted as others', the loop would be a whole core
    assert 1 <= CoreMeter().usable() <= allowed_cores()
