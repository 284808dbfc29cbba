#!/usr/bin/python3
"""Fails when compiled files need each other: builds the graph "A needs a
symbol that B defines" from nm over the given objects and reports every
cycle (a pair A<->B, or longer)."""
import subprocess, sys, os

def syms(obj):
    out = subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout
    d, u = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            u.add(parts[1])
        elif len(parts) == 3 and parts[1] in "TDBRCGSV" :
            d.add(parts[2])
    return d, u

objs = sys.argv[1:]
info = {os.path.basename(o): syms(o) for o in objs}
edges = {a: sorted(b for b in info if b != a and info[a][1] & info[b][0]) for a in info}
# Tarjan's strongly connected components.
index, low, stack, on, sccs, n = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
    for w in edges[v]:
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: sccs.append(sorted(comp))
sys.setrecursionlimit(10000)
for v in sorted(info):
    if v not in index: visit(v)
for comp in sccs:
    print("cycle:", " <-> ".join(comp))
    for a in comp:
        for b in edges[a]:
            if b in comp:
                print("   %s needs %s: %s" % (a, b, ", ".join(sorted(info[a][1] & info[b][0]))))
sys.exit(1 if sccs else 0)
