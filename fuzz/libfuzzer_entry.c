/* libFuzzer's entry point for one fuzz target: fuzz/build.sh compiles this with
 * -DTARGET=peerreg_fuzz_<target> (the @_cdecl function in fuzz/targets/<target>.swift). */
#include <stddef.h>
#include <stdint.h>

int TARGET(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return TARGET(data, size); }
