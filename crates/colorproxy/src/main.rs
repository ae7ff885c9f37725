fn main() {
    println!("{:?}", colorproxy_nn::hello());
}
