{
  "targets": [
    {
      "target_name": "oreal_blas",
      "sources": ["native/oreal_blas.c"],
      "cflags": ["-O3", "-fno-math-errno", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags!": ["-O2"],
      "include_dirs": ["/usr/include/x86_64-linux-gnu/openblas-pthread", "/usr/include/openblas"],
      "libraries": ["-lopenblas"]
    }
  ]
}
