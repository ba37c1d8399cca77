//! `weir-netavark`: the netavark plugin (see `weir::netavark`).
fn main() -> std::process::ExitCode {
    weir::netavark::main()
}
