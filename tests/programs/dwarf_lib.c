/* A library whose DWARF is read from a separate debug file (found by build-id). */
struct lib_item {
    int key;
    char tag[8];
    struct lib_item *next;
};

__attribute__((noinline)) long lib_visit(const struct lib_item *item, int depth) {
    long sum = 0;
    for (; item; item = item->next)
        sum += item->key * depth;
    return sum;
}
