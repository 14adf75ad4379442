"""Compiler passes, one module each; ``compile.RULES`` runs them in order."""
