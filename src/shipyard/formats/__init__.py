"""Converters from every supported source to ONNX, with parity checks, and registration."""

from shipyard.formats.base import DEFAULT_TOLERANCE
from shipyard.formats.flavors import FLAVORS
from shipyard.formats.onnx_file import TextOptions
from shipyard.formats.options import RegistrationOptions
from shipyard.formats.registration import register

__all__ = ["DEFAULT_TOLERANCE", "FLAVORS", "RegistrationOptions", "TextOptions", "register"]
