"""Workforce management: Erlang C / Erlang A calculators and a discrete-event
simulator that drives the real ACD core. Pure: no I/O, no wall clock."""
