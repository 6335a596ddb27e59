"""Selection rules on a cut built in the test: markers on clips, tracks and the timeline
(by name or colour, over the clip's record range), track names, clip-name patterns."""

from __future__ import annotations

from pathlib import Path

import opentimelineio as otio

from swapgraph.timeline.cut import parse_rule, select_clips


def rt(v: int) -> otio.opentime.RationalTime:
    return otio.opentime.RationalTime(v, 24)


def _clip(name: str, duration: int = 10, marker: str | None = None) -> otio.schema.Clip:
    clip = otio.schema.Clip(name=name, media_reference=otio.schema.ExternalReference(target_url=f"{name}.mov"),
                            source_range=otio.opentime.TimeRange(rt(100), rt(duration)))
    if marker:
        clip.markers.append(otio.schema.Marker(name=marker, color="PURPLE",
                                               marked_range=otio.opentime.TimeRange(rt(100), rt(0))))
    return clip


def _cut() -> otio.schema.Timeline:
    cut = otio.schema.Timeline(name="sel", global_start_time=rt(86400))
    v1 = otio.schema.Track(name="V1")
    v1.extend([_clip("A010"), _clip("A020", marker="SH020"), _clip("B030"), _clip("B040")])
    v1[3].enabled = False
    v2 = otio.schema.Track(name="FX")
    v2.extend([otio.schema.Gap(duration=rt(30)), _clip("C050")])
    # a track marker over record frames 12-13 (A020), a timeline marker at frame 25 (B030)
    v1.markers.append(otio.schema.Marker(name="fix", color="GREEN", marked_range=otio.opentime.TimeRange(rt(12), rt(2))))
    cut.tracks.extend([v1, v2, otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)])
    cut.tracks.markers.append(otio.schema.Marker(name="SWAP", color="RED",
                                                 marked_range=otio.opentime.TimeRange(rt(25), rt(0))))
    return cut


def names(*rules: str) -> list[str]:
    return [c.clip.name for c in select_clips(_cut(), [parse_rule(r) for r in rules], Path("sel.otio"))]


def test_markers_by_name_or_colour_wherever_they_sit():
    assert names("marker:SH020") == ["A020"]  # on the clip, by name
    assert names("marker:purple") == ["A020"]  # the same marker by colour, any case
    assert names("marker:green") == ["A020"]  # a track marker over the clip's record frames
    assert names("marker:SWAP") == ["B030"]  # a timeline marker over the clip's record frames


def test_tracks_patterns_and_several_rules():
    assert names("track:fx") == ["C050"]
    assert names("clip:^B0") == ["B030"]  # B040 is disabled: the cut does not show it
    assert names("clip:0$", "track:FX") == ["A010", "A020", "B030", "C050"]  # any rule: in record order
    selected = select_clips(_cut(), [parse_rule("marker:SWAP"), parse_rule("clip:B")], Path("sel.otio"))
    assert [str(r) for r in selected[0].selected_by] == ["marker:SWAP", "clip:B"]
