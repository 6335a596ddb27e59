"""``swapgraph demo``: the whole pipeline on shots made from packaged photos."""

#: the demo's training steps: the most the default recipe trains in under 5 minutes of the
#: whole demo on two idle cores (550 steps took 256 s there; README, "The demo")
DEMO_STEPS = 500
