"""Tests of core/images: inputs read, decoded, conformed and inspected."""
