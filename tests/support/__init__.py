"""Helpers shared by the tests and scripts: media makers, a real-server runner, box builders,
demuxers, token and upstream fixtures, the fuzzer. No tests here."""
