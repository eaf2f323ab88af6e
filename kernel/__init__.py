"""The shared kernel: what every app of the domain uses and none of them owns.

`errors` (domain errors with a code), `money` (amounts in a currency's minor unit, one grammar,
one formatter), `windows` (every window and deadline, from pure functions that take `now`) and
`sweeps` (the set-based engine that applies a transition's declaration to every due row). See
docs/architecture.md, Apps.
"""
