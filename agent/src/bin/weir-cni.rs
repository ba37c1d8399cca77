//! `weir-cni`: the CNI plugin (see `weir::cni`).
fn main() -> std::process::ExitCode {
    weir::cni::main()
}
