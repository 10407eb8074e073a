"""Tests of the mta package."""
