"""The local target: one machine, no Docker. `install` prepares the data folder,
`runtime` and `supervisor` run the proxy, the hub and the grader servers, `apply`
brings a running installation to a changed site file, `host` is what the hub asks."""
