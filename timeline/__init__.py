"""The editorial round trip: pull the shots to swap from an editor's timeline (OpenTimelineIO,
CMX 3600 EDL, FCP7 XML, AAF), render each with a graph, and conform the renders back onto
a copy of the cut, frame for frame."""
