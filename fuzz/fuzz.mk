# libFuzzer harnesses: see fuzz/README.md (written by the security work).
