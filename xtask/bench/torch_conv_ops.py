"""PyTorch's time per conv op on the ResNet-20/56 shapes at batch 64 (channels_last, as the
bench): forward, input gradient, weight gradient, so our kernels' `conv_op_speed` ignored test
can be read beside it. Usage: python xtask/bench/torch_conv_ops.py [threads]"""
import torch, time, sys
torch.set_num_threads(int(sys.argv[1]) if len(sys.argv)>1 else 2)
B=64
shapes=[(3,16,32,1),(16,16,32,1),(16,32,32,2),(32,32,16,1),(32,64,16,2),(64,64,8,1)]
def t(f,reps=20):
    f();f()
    s=time.perf_counter()
    for _ in range(reps): f()
    return (time.perf_counter()-s)/reps*1e3
for cin,cout,hw,st in shapes:
    x=torch.randn(B,cin,hw,hw).to(memory_format=torch.channels_last).requires_grad_(True)
    w=torch.randn(cout,cin,3,3).to(memory_format=torch.channels_last).requires_grad_(True)
    y=torch.nn.functional.conv2d(x,w,stride=st,padding=1)
    gy=torch.randn_like(y)
    fwd=t(lambda: torch.nn.functional.conv2d(x.detach(),w.detach(),stride=st,padding=1))
    def bwd():
        y=torch.nn.functional.conv2d(x,w,stride=st,padding=1)
        torch.autograd.grad(y,[x,w],gy)
    both=t(bwd)-fwd
    def bwdw():
        y=torch.nn.functional.conv2d(x.detach(),w,stride=st,padding=1)
        torch.autograd.grad(y,[w],gy)
    wonly=t(bwdw)-fwd
    fl=2*B*cout*cin*9*(hw//st)**2/1e9
    print(f"{cin}->{cout} {hw}x{hw} s{st}: fwd {fwd:.2f} ms ({fl/fwd*1e3:.0f} GF/s)  bwd(data+w) {both:.2f}  bwd(w only) {wonly:.2f}  => data ~{both-wonly:.2f}")
