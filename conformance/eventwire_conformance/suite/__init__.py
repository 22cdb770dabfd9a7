"""The conformance tests, one or more per guarantee; the id is in every test's name.

These modules are collected by the suite plugin (``pytest --eventwire-url URL``), never by
name patterns, so a plain ``pytest`` run elsewhere does not pick them up.
"""
