"""Jobs: what each command does to a block of frames (see :mod:`trajalign.pipeline`)."""
