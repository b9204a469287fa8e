"""Tests of scalelab.analysis against synthetic run directories with known truth."""
