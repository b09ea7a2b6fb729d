"""Keygrip's Nuke glue: a Keygrip node (a Group) that runs a compositing pass on the Keygrip server
and wires the result into itself.

Thin by design: the passes, uploads, downloads and sessions are the SDK's (keygrip.compositing,
keygrip.session); this package only reads the node's knobs, shows progress and builds nodes.
`host` is the one module that imports Nuke's `nuke`, so that tests can put a fake in its place.
"""
