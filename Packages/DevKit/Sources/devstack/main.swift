print("devstack")
