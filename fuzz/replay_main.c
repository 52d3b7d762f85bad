/*
 * replay_main: runs a fuzz target's entry point over every file of the
 * corpus directories given, so `make test` replays what the fuzzer found
 * without needing clang or libFuzzer. A missing first directory is an error;
 * further ones (such as ../shared corpora) are skipped when absent.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (!buf) return -1;
    /* exact-size copy so ASan sees reads past the end */
    uint8_t *exact = malloc(len ? len : 1);
    memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    for (int i = 1; i < argc; i++) {
        DIR *d = opendir(argv[i]);
        if (!d) {
            if (i == 1) {
                fprintf(stderr, "replay: cannot open corpus %s\n", argv[i]);
                return 1;
            }
            printf("replay: %s absent, skipped\n", argv[i]);
            continue;
        }
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
            if (replay_file(path) == 0) count++;
        }
        closedir(d);
    }
    printf("replay: %zu inputs, no failure\n", count);
    return count ? 0 : 1;
}
