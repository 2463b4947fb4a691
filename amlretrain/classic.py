"""Deprecated: moved to :mod:`amlretrain.studio.management` in 0.2.0; removed in 0.3.0."""

from amlretrain._deprecated import moved_module

moved_module(__name__, "amlretrain.studio.management")
