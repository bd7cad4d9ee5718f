"""`antifraud faults`: the fault suite with figures (issue 17, part 6).

It brings the real platform up (streams.supervisor.bring_up, embedded broker and Valkey in a
run directory of its own, two stream workers), drives a steady mixed load through the input
topics, injects faults (kill -9 of a stream worker, kill -9 of a channel worker mid-send,
Valkey stop/start, broker stop/start) and checks, from what is on the broker, that every
funds warning exists once, no citizen is contacted twice for one action attempt, no bank
request is lost or duplicated, and that every stage catches up after each fault.
See faults.suite for the oracle and docs/reliability.md ("Fault suite") for the figures.
"""
