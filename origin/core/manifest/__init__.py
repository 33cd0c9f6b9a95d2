"""Manifest builders (HLS, DASH, Smooth) over a description of the presentation, never bytes."""
