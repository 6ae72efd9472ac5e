"""Animate: a Discord bot that turns a picture into a short video."""
