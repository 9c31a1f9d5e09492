"""Tests of the fraud model room (ml/)."""
