"""User-stack unwinding by call-frame information (CFI), with frame pointers as fallback.

    cfi.py        .eh_frame / .debug_frame of one file -> rows, looked up by bisect
    dwexpr.py     the DWARF expressions CFI rules use (PLT entries, signal frames)
    stackmem.py   the stack read in one go, further reads only where a frame leaves it
    modules.py    one process's file mappings at one moment: address -> (file, vaddr)
    unwinder.py   registers + memory -> return addresses, innermost first
"""
