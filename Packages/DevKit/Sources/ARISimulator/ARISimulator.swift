// ARISimulator
