"""Genetic programming over the primitive language: the primitive set, programs and seeds."""
