fn main() {
    ch01_process::main::<ch03_net::Opts>()
}
