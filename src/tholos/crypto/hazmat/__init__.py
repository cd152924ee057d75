"""Hazardous low layer: polynomials, Shamir sharing, Feldman commitments, Lagrange coefficients.

Misuse (reusing a polynomial, revealing an evaluation) loses keys. Node and gateway code use the
protocol modules above this layer, never these functions directly.
"""
