"""Deliberately wrong hand-written networks, each ``Net(spec, optimizer)``.

``base.Net`` is correct; every other module holds one mistake people make when
writing backprop by hand (see each module's docstring). Plugged in as
``tests.gallery.<module>:Net``.
"""
