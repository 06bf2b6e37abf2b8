"""What the tests share: datasets written in the benchmarks' layouts, console-script runners."""
