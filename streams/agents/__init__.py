"""Agents: one per event family (decode, fold, write, emit), plus the publisher."""
