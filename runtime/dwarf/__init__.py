"""The program's own debug information (DWARF), read lazily with pyelftools.

    debugfile  where a file's DWARF lives: itself, its build-id debug file, its debuglink
    info       DebugInfo: one file's DWARF, compilation units parsed only when needed
    ctypes     DWARF types -> uplang.plan TypeLayouts and TypeRefs, C spellings for listings
    lines      the line table: source line -> addresses
    location   DWARF location expressions of locals at an address
    source     TypeSource for the checks: signatures of probed functions, types by name
"""
