fn main() {
    ch01_process::main::<ch04_ipc::Opts>()
}
